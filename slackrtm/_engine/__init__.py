"""What runs a connection, for either protocol.

The sans-I/O core (``states``, ``core`` with its sending half ``sending``, ``pacing``,
``split``, ``backoff``) holds the rules and owns no socket, thread or clock. Around it, one
module per thread job: ``run`` (threads and shutdown), ``attempts`` (the supervising loop),
``reading`` (what the reader does with each read), ``writer`` (the only writer to the
socket), ``poster`` (messages posted with chat.postMessage), ``transport`` (an open
socket; ``handshake`` opens one, ``frames`` is the wire format) and ``dispatch`` (the
dispatcher and the handler registry; ``entries`` is what it is handed). ``context`` is what
a run is handed by its client. Nothing here imports a client facade, the command line or
``slackrtm.testing`` (``.importlinter`` checks it).
"""
