"""The agent web app: static ES modules and CSS served at `/`, talking only to `/v1`."""
