"""What is built for students and Gradescope: the release, the autograder bundle, submissions, starter/, scaffolds.

Never imports the app (reports, batch, CLI) nor the sandbox's worker/.
"""
