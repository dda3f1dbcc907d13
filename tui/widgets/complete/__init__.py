"""The Complete screen's widgets: the completion area and its generated spans."""
