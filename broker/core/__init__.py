"""What the API and the worker share: settings, keys, records, the store, the saver.

It imports neither broker.api nor worker.
"""
