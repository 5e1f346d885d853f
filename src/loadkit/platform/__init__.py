"""The reference platform: an embedded stand-in for the AI calling platform's HTTP API.

It implements the contract in ``docs/api.md`` with in-memory state, a simulated dialer queue,
background CSV imports, per-route fault injection and its own request counters, so the kit's
scenarios can be run and tested end to end on loopback.

Entry points (imported from their modules, so that importing this package costs nothing):
``loadkit.platform.server.main(argv)`` serves in this process (``python -m loadkit.platform``);
``loadkit.platform.launcher.start_platform(api_key)`` runs it as a child process;
``loadkit.platform.config.add_platform_arguments(parser)`` adds its flags to a parser.
"""
