"""The peer benchmark's code; ``benchmarks/peers.py`` runs it and describes what it measures."""
