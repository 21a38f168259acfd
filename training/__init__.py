"""Development-only code (synthetic renders, training); not shipped in the extension."""
