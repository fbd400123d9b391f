"""Analysis over a snapshot: what is wrong and where (doctor, trace)."""
