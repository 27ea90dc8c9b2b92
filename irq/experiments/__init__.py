"""The user's verbs on experiments that need no cluster: add, promote, retry, views."""
