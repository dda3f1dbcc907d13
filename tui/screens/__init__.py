"""llamaterm's screens: one package per screen, with the dialogs they share beside them."""
