"""What people run and read: the grader command, batch grading, reports, the Gradescope entry point.

The top: nothing in the grader imports it.
"""
