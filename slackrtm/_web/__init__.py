"""HTTP plumbing under ``slackrtm.web``: the requests adapter, proxies and abort scopes
(``http``) and Slack's published rate tiers (``tiers``)."""
