"""Sign-in methods as stateless protocol helpers: TOTP, recovery codes, passkeys (py_webauthn)."""
