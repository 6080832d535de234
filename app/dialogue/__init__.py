"""The dialogue layer: what a shopper's message is about (intent) and how they feel (sentiment)."""
