"""The benchmark harness: template-owned, updated by `copier update`. Do not edit here.

Your code lives one level up (params.py, predict.py, data.py, scoring.py); this package runs it,
records it and analyses it. See the project README for which files are whose.
"""
