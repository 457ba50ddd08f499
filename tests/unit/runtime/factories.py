"""Ready-made job results for tests that need one without rendering a video."""

from __future__ import annotations

from avatar_runtime.api.jobs import JobResult, OutputFile, Outputs, StageSeconds

STAGE_SECONDS = StageSeconds(fetch=0.2, tts=0.7, asr=0.4, render=3.0, encode=0.6, upload=0.3)


def job_result(
    *,
    wall_seconds: float = 5.0,
    video_seconds: float = 12.5,
    stages: StageSeconds = STAGE_SECONDS,
) -> JobResult:
    def file(name: str, content_type: str) -> OutputFile:
        return OutputFile(
            url=f"gs://b/x/{name}", size_bytes=10, sha256="0" * 64, content_type=content_type
        )

    return JobResult(
        video_seconds=video_seconds,
        wall_seconds=wall_seconds,
        realtime_factor=wall_seconds / video_seconds,
        stages=stages,
        frames=round(video_seconds * 25),
        resolution=512,
        fps=25,
        wer=0.0,
        transcript="hi",
        outputs=Outputs(
            video=file("video.mp4", "video/mp4"), thumbnail=file("thumbnail.jpg", "image/jpeg")
        ),
    )
