"""Commands by mail: the user's answers to the digest and the digest's one-click links."""
