"""Stand-alone mode: the Manager keeps the jobs itself when no Flamenco Server is configured."""
