"""Status lines every screen shows: top bar, model, server and prediction status."""
