"""The course's comparisons and exercises: the measurements of chapters 5 and 6
(``compare``), the checkers of the write-it exercises (``checking``, ``check``) and the
debugging lab (``lab``)."""
