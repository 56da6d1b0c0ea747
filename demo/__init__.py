"""`make demo`: every architecture of the decision framework, working end to end on loopback (demo.run)."""
