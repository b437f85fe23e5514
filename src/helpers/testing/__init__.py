"""Stand-ins for tests and rehearsals, never used by a real run: tiny random models, synthetic
run folders, and an offline Hugging Face cache of random-initialised report models."""
