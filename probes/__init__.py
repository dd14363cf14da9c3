"""Reading models: probing examples, hidden states, linear and V-probes, the regret detector and retry-upon-regret."""
