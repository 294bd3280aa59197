"""Notification channels beside e-mail: group robots of DingTalk and WeCom (issue 18)."""
