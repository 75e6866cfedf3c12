"""The four steps of a run, one file each. Each takes plain values and the network state,
returns the small dict the state machine passes on, and knows nothing about Lambda."""
