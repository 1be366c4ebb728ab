"""The ``slackrtm`` command line: ``main`` routes to one module per subcommand
(``tail``, ``send``, ``fake``, ``demo``), over shared ``base`` and ``format`` helpers."""
