"""The Qt-free application layer: the annotating session, its operations on the store, the review
queue of pending proposals, discovery jobs and long jobs. Used by the window (gui/ subscribes and
renders) and by the CLI alike."""
