"""`livespeaker demo`: the whole appliance on simulated hardware, drawn in the terminal."""
