"""What an assignment is and how a check decides: loading, checks, comparison, answers, submissions, grading.

Never imports the builders or the app, nor the sandbox's worker/ (it runs probes through sandbox.runner).
"""
