"""Embedded CPU renderer (OpenCV): face finding, visemes, motion curves, drawing."""

from avatar_runtime.engines.opencv_renderer.renderer import OpenCVAvatar, OpenCVRenderer

__all__ = ["OpenCVAvatar", "OpenCVRenderer"]
