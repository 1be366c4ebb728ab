"""What differs between Slack's two real-time protocols.

``rtm_run`` reads RTM frames and matches replies; ``sm_run`` reads Socket Mode envelopes,
acknowledges them and refreshes connections without a gap; ``envelope`` holds the request
object handed to envelope handlers and the redelivery memory. Both runs subclass
``slackrtm._engine.run.Run``.
"""
