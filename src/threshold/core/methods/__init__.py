"""Ways of proving something, one module each: password, TOTP, recovery code, passkey (and the emailed
link or code, which proves control of a mailbox and is no authenticator). Each check returns a `Proof`
naming what was proved; `assurance.assess` turns a set of proofs into aal, amr and acr."""
