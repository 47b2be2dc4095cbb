"""Business settings: kept in the database, encrypted where secret, audited, cached."""
