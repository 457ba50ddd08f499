"""The long-lived side of a runtime pod: jobs on a board, slots that run them."""
