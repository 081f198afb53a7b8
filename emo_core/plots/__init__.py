"""Every picture emo-nodes draws, Pillow only, in one style (``style``, ``marks``): the one V-A pad (``pad``) under
the V-A to emotion picture and IEI's V-A trace (``plane``), the critic's pad and error heat map (``critic``) and the
closed loop's trace (``closed_loop``); the emotion bar chart (``bars``), the IEI trace (``iei``), the training loss
curve (``loss``) and the labelled V-A contact sheet (``sheet``)."""
