"""Jobs: the job script, git facts, preflight, submission, state sync, fetching results."""
