"""`make new-dag`: a team's first DAG, its test and a trainer preset, ready to run locally."""
