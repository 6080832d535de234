"""The shop's tools behind the intent router: orders, returns and the product catalogue."""
