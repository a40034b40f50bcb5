"""Mail: composed from templates, written to the outbox in the causing transaction, sent later."""
