"""Login sessions: bearer tokens kept (hashed) in Redis, login rate limits, and the routes
`POST /auth/login`, `POST /auth/logout`, `GET|DELETE /me/sessions`."""
