"""Real-time updates over WebSockets: fan-out of events, presence on tickets."""
