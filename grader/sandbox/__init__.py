"""How student code runs: isolation, the bounded parser, the worker servers and (worker/) the untrusted side.

Never imports the engine, the builders or the app; worker/ imports nothing of the grader but probing.py.
"""
