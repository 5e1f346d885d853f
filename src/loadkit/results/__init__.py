"""Every output of a run: the files in its results folder and the streams it feeds."""
