"""The robot book: every group robot, read from the CHANNEL_ROBOTS secret (a YAML or JSON document).

```yaml
xiangshan-dingtalk:          # the robot's name: shown in the delivery log (never the token or secret)
  kind: dingtalk
  token: 0123abcd...         # access_token from the webhook URL
  secret: SEC0123...         # 加签 secret
  units: [XS-XFJ]            # unit codes whose notices go to this group
office-wecom:
  kind: wecom
  token: 693a91f6-...        # key from the webhook URL
  campaigns: [huaibei-2020]  # every unit's notices of these campaigns
```
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import yaml
from pydantic import ValidationError

from shared.channels.port import Channel, Robot
from shared.channels.ratelimit import WindowLimit


class RobotsInvalid(ValueError):
    """The CHANNEL_ROBOTS document does not read as a mapping of robot names to robots."""


@dataclass(frozen=True)
class RobotBook:
    """The configured robots by name, and which ones post a unit's notices."""

    robots: Mapping[str, Robot] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> RobotBook:
        """Read the document; RobotsInvalid names the robot at fault but never echoes a value."""
        if not text or not text.strip():
            return cls()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RobotsInvalid("CHANNEL_ROBOTS is not YAML or JSON") from exc
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise RobotsInvalid("CHANNEL_ROBOTS must map robot names to robots")
        robots: dict[str, Robot] = {}
        for name, spec in data.items():
            if not isinstance(spec, dict):
                raise RobotsInvalid(f"CHANNEL_ROBOTS: robot {name!s} must be a mapping")
            try:
                robots[str(name)] = Robot(name=str(name), **spec)
            except (ValidationError, TypeError) as exc:
                problems = (
                    "; ".join(
                        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
                    )
                    if isinstance(exc, ValidationError)
                    else "bad fields"
                )
                raise RobotsInvalid(f"CHANNEL_ROBOTS: robot {name!s}: {problems}") from None
        return cls(robots)

    def get(self, name: str) -> Robot | None:
        """The robot of that name, if configured."""
        return self.robots.get(name)

    def for_unit(self, unit_code: str | None, campaign_code: str | None) -> list[Robot]:
        """The robots posting this unit's notices: the unit's own group(s), then its campaign's, by name."""
        found = [
            robot
            for robot in self.robots.values()
            if (unit_code and unit_code in robot.units)
            or (campaign_code and campaign_code in robot.campaigns)
        ]
        return sorted(found, key=lambda robot: robot.name)

    def __iter__(self) -> Iterator[Robot]:
        return iter(self.robots.values())

    def __len__(self) -> int:
        return len(self.robots)


@dataclass
class Channels:
    """A process's channels: the robot book, an adapter per platform and the per-robot rate limit."""

    robots: RobotBook
    adapters: Mapping[str, Channel]
    limit: WindowLimit

    def adapter(self, kind: str) -> Channel | None:
        """The adapter for a platform (dingtalk, wecom)."""
        return self.adapters.get(kind)
