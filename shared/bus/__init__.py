"""The message bus port and its adapters (in-process and RabbitMQ)."""
