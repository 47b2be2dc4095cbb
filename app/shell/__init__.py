"""The shell: what runs the bridge (ASGI app, composition root, CLI, demo, console, jobs).

The top layer: it may import every layer below; nothing imports it.
"""
