"""The web console (网页控制台): Chinese pages over the platform's APIs, served under /console."""
