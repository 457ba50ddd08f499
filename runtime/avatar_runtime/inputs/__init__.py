"""Getting a job's inputs safely: fetch bytes from wherever the spec points, then validate.

Everything here treats its input as hostile (it comes from whoever can create an
AvatarVideo), so each step enforces a size limit and turns every failure into a
``JobError`` the user can act on.
"""
