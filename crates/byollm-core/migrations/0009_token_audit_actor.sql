-- Azure tokens (issue 18) may carry a coarser `sub` than the actor (Entra's
-- federated identity credentials match one exact subject, so a team can
-- choose `scoped_principal:<team>` or `…/<actor-type>`). The audit row keeps
-- the token's `sub` as issued and, in `actor`, the full actor subject it
-- stands for (NULL when `sub` is already the full subject), so byollm's own
-- records never lose who a token was for.
ALTER TABLE token_audit ADD COLUMN actor TEXT;
