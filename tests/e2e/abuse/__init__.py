"""Replays of the attacks of issue 8: each one bounded in time, each checking that the server
keeps serving everyone else."""
