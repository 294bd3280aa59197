"""Serve the console on its own: `python -m services.console [api] [--port N]` (behind the gateway at /console)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    """Parse the options and serve the console with uvicorn on HOST:PORT, under ROOT_PATH."""
    import uvicorn

    from services.console.app import create_app
    from shared.runtime import configure_logging
    from shared.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m services.console")
    parser.add_argument(
        "role", nargs="?", default="api", choices=["api"], help="the console has an HTTP role only"
    )
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: PORT)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings, service="console", role="api")
    uvicorn.run(
        create_app(),
        host=settings.host,
        port=args.port or settings.port,
        root_path=settings.root_path,
        log_level="info",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
