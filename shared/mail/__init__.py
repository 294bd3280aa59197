"""The mailer port and its adapters (local folder of .eml files and SMTP)."""
