"""`blender-render`: the frame range split into chunks, one `blender_render` task each, then
an optional `create_video` task that depends on all of them."""

from __future__ import annotations

import re

from flamenco.jobs.compiled import CompileError, TaskSpec, command
from flamenco.jobs.frames import as_range_text, chunks, parse_frames
from flamenco.jobs.settings import SettingSpec

#: File name extension Blender gives each output format (for the video's input glob).
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "OPEN_EXR": "exr", "OPEN_EXR_MULTILAYER": "exr",
              "EXR": "exr", "TIFF": "tif", "BMP": "bmp", "TARGA": "tga"}
_HASHES = re.compile(r"#+")


class BlenderRenderJob:
    name = "blender-render"
    description = "Renders a frame range in chunks; optionally encodes the frames as a video."
    settings = (
        SettingSpec("filepath", "string", "the .blend file", required=True),
        SettingSpec("frames", "string", "frames to render, e.g. 1-250 or 1-10,20", required=True),
        SettingSpec("render_output", "string",
                    "output path with # for the frame number, e.g. /render/shot/######",
                    required=True),
        SettingSpec("format", "string", "Blender's output format", default="PNG"),
        SettingSpec("chunk_size", "integer", "frames per render task", default=10, minimum=1,
                    maximum=10_000),
        SettingSpec("blender_cmd", "string", "how Workers start Blender",
                    default="{blender}"),
        SettingSpec("video_output", "string",
                    "when set, a last task encodes the frames into this video file"),
        SettingSpec("fps", "number", "frame rate of the video", default=24, minimum=1,
                    maximum=1000),
        SettingSpec("ffmpeg_cmd", "string", "how Workers start FFmpeg", default="{ffmpeg}"),
    )

    def compile(self, settings: dict) -> list[TaskSpec]:
        problems = []
        try:
            frames = parse_frames(settings["frames"])
        except ValueError as error:
            problems.append(f"settings.frames: {error}")
            frames = []
        if "#" not in settings["render_output"]:
            problems.append("settings.render_output: needs # characters for the frame number")
        if settings.get("video_output") is not None and settings["format"] not in EXTENSIONS:
            problems.append(f"settings.format: {settings['format']!r} cannot be made into a "
                            f"video (use one of {', '.join(sorted(EXTENSIONS))})")
        if problems:
            raise CompileError(problems)
        renders = [self._render_task(settings, group)
                   for group in chunks(frames, settings["chunk_size"])]
        if settings.get("video_output") is None:
            return renders
        return [*renders, self._video_task(settings, [task.name for task in renders])]

    @staticmethod
    def _render_task(settings: dict, group: list[int]) -> TaskSpec:
        suffix = f"{group[0]}" if len(group) == 1 else f"{group[0]}-{group[-1]}"
        return TaskSpec(
            name=f"blender-render-{suffix}",
            task_type="blender-render",
            commands=(command(
                "blender_render",
                blender_cmd=settings["blender_cmd"],
                filepath=settings["filepath"],
                format=settings["format"],
                render_output=settings["render_output"],
                frames=as_range_text(group),
            ),),
        )

    @staticmethod
    def _video_task(settings: dict, parents: list[str]) -> TaskSpec:
        pattern = _HASHES.sub("*", settings["render_output"])
        extension = "." + EXTENSIONS[settings["format"]]
        if not pattern.lower().endswith(extension):
            pattern += extension
        return TaskSpec(
            name="create-video",
            task_type="video-encoding",
            parents=tuple(parents),
            commands=(command(
                "create_video",
                ffmpeg_cmd=settings["ffmpeg_cmd"],
                input_files=pattern,
                output_file=settings["video_output"],
                fps=settings["fps"],
            ),),
        )


job_type = BlenderRenderJob()
