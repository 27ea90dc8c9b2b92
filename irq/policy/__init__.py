"""Pure decisions: what to submit next, why a job failed, whether to retry bigger."""
