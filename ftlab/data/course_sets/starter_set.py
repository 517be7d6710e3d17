"""A small general instruction set written for ftlab, for practice without the Hub; and Alpaca online.

``general()`` returns about 80 short, varied instructions with answers (explanations, rewrites,
lists, how-tos, classification, summaries, and a few in Chinese), each a chat row with a
``category`` column. The rows were written by ftlab's authors for this course and are dedicated to
the public domain under CC0 1.0 (https://creativecommons.org/publicdomain/zero/1.0/): copy, change
and share them freely. It is far too small to teach a model new skills; it is for practising the
data pipeline (load, dedup, split, length report) and for quick smoke runs offline.
``load_alpaca`` (in ``ftlab.data.loading``) gives the first rows of tatsu-lab/alpaca when online;
``python_docs`` gives real text of Alpaca's size offline.
"""

from __future__ import annotations

from ftlab.data.formats import chat_row

# (category, instruction, answer). Plain text; answers short enough for a 512-token budget.
ROWS: list[tuple[str, str, str]] = [
    ("explain", "Explain what a leap year is.",
     "A leap year has 366 days instead of 365: February gets a 29th day. It keeps the calendar in step with "
     "the Earth's orbit, which takes about 365.24 days. A year is a leap year if it divides by 4, except "
     "century years, which must divide by 400, so 2000 was a leap year and 1900 was not."),
    ("explain", "Why is the sky blue?",
     "Sunlight contains all colours. When it passes through the air, small gas molecules scatter short "
     "wavelengths (blue and violet) much more than long ones (red). That scattered blue light reaches "
     "our eyes from every direction, so the sky looks blue. Our eyes are less sensitive to violet, so we "
     "see blue rather than purple."),
    ("explain", "What does a compiler do?",
     "A compiler translates a program written in a high-level language, such as C, into a lower-level "
     "form the computer can run, usually machine code. It also checks the program for errors like wrong "
     "types or missing declarations before it ever runs."),
    ("explain", "Explain the difference between weather and climate.",
     "Weather is the state of the air at a place and time: today's rain, wind and temperature. Climate is "
     "the average pattern of weather in a region over many years, usually thirty or more. Weather changes "
     "by the hour; climate changes over decades."),
    ("explain", "What is photosynthesis, in one paragraph?",
     "Photosynthesis is how plants, algae and some bacteria make food from light. Using the energy of "
     "sunlight, they combine carbon dioxide from the air and water from the soil into sugar, and release "
     "oxygen as a by-product. It happens mainly in the chloroplasts of leaves."),
    ("explain", "What is a prime number? Give three examples.",
     "A prime number is a whole number greater than 1 whose only divisors are 1 and itself. Examples: 2, "
     "7 and 13. The number 1 is not prime, and 2 is the only even prime."),
    ("explain", "Explain what 'fine-tuning' a language model means.",
     "Fine-tuning means taking a model that was already trained on a large amount of general text and "
     "training it a little more on a smaller, focused data set, so it learns a particular task or style. "
     "It is much cheaper than training from scratch because the model keeps most of what it already knows."),
    ("explain", "What is the difference between RAM and storage?",
     "RAM is the computer's short-term working memory: fast, but emptied when the power goes off. Storage "
     "(an SSD or hard disk) keeps files permanently but is slower. Programs are loaded from storage into "
     "RAM to run."),
    ("explain", "Why do we have seasons?",
     "The Earth's axis is tilted about 23.4 degrees. As the Earth orbits the Sun, each hemisphere is "
     "tilted towards the Sun for part of the year, getting more direct sunlight and longer days (summer), "
     "and tilted away for another part (winter). Seasons are not caused by the distance to the Sun."),
    ("explain", "What is a percentage?",
     "A percentage is a number expressed as a fraction of 100. For example, 25% means 25 out of every 100, "
     "which is the same as one quarter or 0.25."),
    ("explain", "Explain what an API is to a beginner.",
     "An API (application programming interface) is a set of rules that lets one program ask another for "
     "data or services. Like a menu in a restaurant, it lists what you can order and how to ask for it, "
     "without showing how the kitchen works."),
    ("explain", "What causes a rainbow?",
     "A rainbow appears when sunlight enters raindrops, bends (refracts), reflects off the back of the "
     "drop, and bends again on the way out. Each colour bends by a slightly different amount, so white "
     "light spreads into a band of colours. You see it with the Sun behind you."),
    ("rewrite", "Rewrite this sentence to be more polite: 'Send me the report now.'",
     "Could you please send me the report when you have a moment? Thank you."),
    ("rewrite", "Make this sentence shorter: 'Due to the fact that it was raining, we made the decision to "
                "stay inside the house.'",
     "Because it was raining, we stayed inside."),
    ("rewrite", "Rewrite in the passive voice: 'The committee approved the new budget.'",
     "The new budget was approved by the committee."),
    ("rewrite", "Rewrite in the active voice: 'The window was broken by the ball.'",
     "The ball broke the window."),
    ("rewrite", "Fix the grammar: 'Me and him goes to the library every weeks.'",
     "He and I go to the library every week."),
    ("rewrite", "Rewrite this for a five-year-old: 'Plants convert sunlight into chemical energy.'",
     "Plants eat sunshine! They use light from the sun to make their own food."),
    ("rewrite", "Make this email subject line clearer: 'stuff for tomorrow'",
     "Agenda and materials for tomorrow's meeting"),
    ("rewrite", "Turn this into a formal sentence: 'We gotta fix the bug ASAP.'",
     "We need to fix the defect as soon as possible."),
    ("rewrite", "Rewrite the sentence without the word 'very': 'The test was very hard.'",
     "The test was difficult."),
    ("rewrite", "Paraphrase: 'Practice makes perfect.'",
     "The more you practise something, the better you become at it."),
    ("rewrite", "Correct the spelling: 'I recieved a seperate package yesterday.'",
     "I received a separate package yesterday."),
    ("rewrite", "Rewrite as a question: 'The train leaves at nine.'",
     "Does the train leave at nine?"),
    ("list", "List three renewable sources of energy.",
     "1. Solar power\n2. Wind power\n3. Hydroelectric power"),
    ("list", "Name four planets of the solar system in order from the Sun.",
     "Mercury, Venus, Earth and Mars."),
    ("list", "Give five tips for staying focused while studying.",
     "1. Put your phone in another room.\n2. Work in short blocks, such as 25 minutes, with short breaks.\n"
     "3. Decide what you will finish before you start.\n4. Keep water nearby and the room well lit.\n"
     "5. Review what you learned at the end of each session."),
    ("list", "List the primary colours of light.",
     "Red, green and blue."),
    ("list", "Suggest three names for a friendly robot.",
     "1. Bolt\n2. Pixel\n3. Sunny"),
    ("list", "List four common data structures in programming.",
     "1. Array (list)\n2. Hash map (dictionary)\n3. Stack\n4. Tree"),
    ("list", "What are three things to check before a long car trip?",
     "1. Tyre pressure and tread.\n2. Oil, coolant and washer fluid levels.\n3. Lights and brakes."),
    ("list", "Give three examples of mammals that live in water.",
     "Dolphins, whales and seals."),
    ("list", "List the steps of the water cycle.",
     "1. Evaporation: water turns into vapour.\n2. Condensation: vapour forms clouds.\n"
     "3. Precipitation: water falls as rain or snow.\n4. Collection: water gathers in rivers, lakes and seas."),
    ("list", "Name three ways to reduce plastic waste at home.",
     "1. Carry a reusable bag and bottle.\n2. Buy food loose or in bulk.\n3. Reuse glass jars for storage."),
    ("list", "List three hyperparameters you can tune when fine-tuning with LoRA.",
     "1. The rank r of the adapter matrices.\n2. The learning rate.\n3. The scaling factor alpha."),
    ("howto", "How do I boil an egg?",
     "Place the egg in a pot and cover it with cold water. Bring the water to a boil, then lower the heat "
     "and simmer: about 6 minutes for a soft yolk, 10 minutes for a hard one. Move the egg into cold water "
     "for a minute before peeling."),
    ("howto", "How can I make a strong password?",
     "Use a long passphrase of four or more unrelated words, such as 'lamp river orange cloud', or at least "
     "12 characters mixing letters, numbers and symbols. Use a different password for every site and keep "
     "them in a password manager."),
    ("howto", "How do I reverse a list in Python?",
     "Use my_list.reverse() to reverse it in place, or my_list[::-1] to get a reversed copy. For example, "
     "[1, 2, 3][::-1] gives [3, 2, 1]."),
    ("howto", "How do I count the lines of a file in Python?",
     "with open('data.txt', encoding='utf-8') as f:\n    count = sum(1 for _ in f)\nprint(count)"),
    ("howto", "Explain how to write a good summary.",
     "Read the whole text first. Find the main idea and the few points that support it. Write them in your "
     "own words, in the same order, leaving out examples and details. Keep it to about a quarter of the "
     "original length or less."),
    ("howto", "How do I convert Celsius to Fahrenheit?",
     "Multiply the Celsius temperature by 9/5 and add 32. For example, 20 °C × 9/5 + 32 = 68 °F."),
    ("howto", "How do I save a file as UTF-8 in a text editor?",
     "Open the file, choose 'Save As', and pick 'UTF-8' in the encoding menu before saving. In VS Code, "
     "click the encoding shown in the status bar, choose 'Save with Encoding', then 'UTF-8'."),
    ("howto", "How can I remember new vocabulary better?",
     "Review new words several times with growing gaps (after a day, three days, a week), use each word "
     "in a sentence of your own, and test yourself instead of only re-reading."),
    ("howto", "How do I plant a tree?",
     "Dig a hole twice as wide as the root ball and as deep as it. Loosen the roots, set the tree so the "
     "root collar sits at ground level, fill the hole with soil, and water it well. Keep watering weekly "
     "during the first dry season."),
    ("howto", "What should I do if my model's training loss is zero from the first step?",
     "Check the labels. A loss of exactly zero usually means every label is masked (-100), so nothing is "
     "learned: for example, completion-only masking that never finds the answer's start. Print one "
     "tokenised example and its labels to see which tokens count."),
    ("howto", "How do I make a cup of tea?",
     "Boil fresh water. Put a tea bag or a teaspoon of leaves in a cup, pour the water over it, and let it "
     "steep: 3 to 5 minutes for black tea, 2 to 3 for green tea with slightly cooler water. Remove the tea "
     "and add milk or lemon if you like."),
    ("classify", "Is a tomato a fruit or a vegetable?",
     "Botanically, a tomato is a fruit, because it grows from the flower and contains seeds. In cooking "
     "it is usually treated as a vegetable."),
    ("classify", "Classify the sentiment of this review as positive or negative: 'The battery died after "
                 "two days.'",
     "Negative."),
    ("classify", "Classify the sentiment: 'Fast delivery and it works perfectly.'",
     "Positive."),
    ("classify", "Which of these is not a mammal: dog, eagle, whale, bat?",
     "The eagle: it is a bird. Dogs, whales and bats are mammals."),
    ("classify", "Is this sentence a fact or an opinion? 'Paris is the most beautiful city in the world.'",
     "An opinion: it states a personal judgement that cannot be proven true or false."),
    ("classify", "Sort these numbers from smallest to largest: 42, 7, 19, 3.",
     "3, 7, 19, 42."),
    ("classify", "Which is heavier, a kilogram of feathers or a kilogram of iron?",
     "Neither: both weigh one kilogram. The feathers just take up much more space."),
    ("classify", "Label the part of speech of 'quickly' in 'She ran quickly.'",
     "'Quickly' is an adverb: it describes how she ran."),
    ("summarize", "Summarize in one sentence: 'The meeting started late because the projector did not "
                  "work. After it was fixed, the team reviewed sales, agreed on a new target, and set "
                  "the next meeting for Friday.'",
     "After a late start, the team reviewed sales, set a new target and scheduled the next meeting for Friday."),
    ("summarize", "Summarize the story of Little Red Riding Hood in two sentences.",
     "A girl walks through the woods to visit her grandmother and meets a wolf, who reaches the house "
     "first and disguises himself as the grandmother. A woodcutter arrives in time to save them both."),
    ("summarize", "Give a one-line summary of what LoRA does.",
     "LoRA fine-tunes a large model by training small low-rank matrices added to some of its weights, "
     "leaving the original weights frozen."),
    ("summarize", "Summarize: 'Regular exercise strengthens the heart, improves mood, helps sleep, and "
                  "lowers the risk of many diseases.'",
     "Regular exercise benefits both body and mind."),
    ("summarize", "Summarize why data duplicates are a problem for training.",
     "Repeated rows are trained on many times, so the model memorises them, and copies that land in both "
     "train and eval make the evaluation look better than it is."),
    ("write", "Write a haiku about autumn.",
     "Red leaves drift and fall\nthe wind hums a cooler song\nthe year exhales slow"),
    ("write", "Write a short thank-you note to a teacher.",
     "Dear Ms. Lee, thank you for your patience and encouragement this year. Your lessons made me enjoy "
     "science for the first time. With gratitude, Sam"),
    ("write", "Write a two-sentence story about a lost key.",
     "Mia searched the whole house for her key before finding it in the lock, where she had left it that "
     "morning. She laughed, went inside, and hung it on a hook by the door."),
    ("write", "Write a product description for a reusable water bottle in two sentences.",
     "Keep drinks cold for 24 hours or hot for 12 with this steel bottle. It is leak-proof, dishwasher-safe "
     "and fits in any cup holder."),
    ("write", "Write a polite message declining a meeting invitation.",
     "Thank you for the invitation. Unfortunately I can't attend on Thursday; could you share the notes "
     "afterwards, or suggest another time next week?"),
    ("write", "Give a motivational sentence for someone learning to code.",
     "Every expert was once a beginner who kept going: each error you fix today is a skill you keep."),
    ("reason", "If I have 3 apples and buy 2 more bags of 4 apples each, how many apples do I have?",
     "Two bags of 4 apples is 8 apples. 3 + 8 = 11. You have 11 apples."),
    ("reason", "A train leaves at 14:20 and the trip takes 1 hour 50 minutes. When does it arrive?",
     "14:20 plus 1 hour is 15:20, plus 50 minutes is 16:10. It arrives at 16:10."),
    ("reason", "What is the next number in the sequence 2, 4, 8, 16?",
     "Each number doubles the previous one, so the next is 32."),
    ("reason", "If today is Monday, what day will it be in 10 days?",
     "10 days is one week and 3 days. Three days after Monday is Thursday."),
    ("reason", "Tom is older than Ana, and Ana is older than Ben. Who is the youngest?",
     "Ben is the youngest."),
    ("reason", "A shirt costs 20 dollars and is 25% off. What do I pay?",
     "25% of 20 is 5, so you pay 20 - 5 = 15 dollars."),
    ("zh", "用一句话解释什么是机器学习。",
     "机器学习是让计算机从数据中自动找出规律，并用这些规律对新数据做出预测或判断的方法。"),
    ("zh", "把这句话改写得更礼貌：“把文件发给我。”",
     "麻烦您有空时把文件发给我，谢谢！"),
    ("zh", "列出三种常见的水果。",
     "1. 苹果\n2. 香蕉\n3. 橙子"),
    ("zh", "为什么要多喝水？请简要回答。",
     "水帮助身体调节体温、运送养分和排出废物。缺水会让人疲劳、头痛、注意力下降，所以每天应适量饮水。"),
    ("zh", "怎样煮米饭？",
     "先把大米淘洗两三遍，按米和水约1比1.2的比例加水，浸泡半小时后用电饭锅煮熟，煮好后再焖十分钟即可。"),
    ("zh", "总结一下：“今天下午下了大雨，比赛因此推迟到明天上午九点举行，请大家准时到场。”",
     "比赛因下雨推迟到明天上午九点，请准时到场。"),
    ("zh", "判断下面的评价是正面还是负面：“快递很慢，包装也破了。”",
     "负面。"),
    ("zh", "写一句鼓励正在学习编程的朋友的话。",
     "每一个报错都是一次进步的机会，坚持下去，你一定能写出自己的程序！"),
    ("zh", "解释“温故而知新”的意思。",
     "这句话出自《论语》，意思是复习学过的知识，就能从中获得新的理解和体会。"),
    ("zh", "把“Practice makes perfect.”翻译成中文。",
     "熟能生巧。"),
]


def general(n: int | None = None) -> list[dict]:
    """ftlab's own general instruction set (CC0), as chat rows with a ``category`` column.

    ``n``: the first ``n`` rows (all of them when None). The rows are the same on every call.
    """
    if n is not None and not 0 < n <= len(ROWS):
        raise ValueError(f"general() has {len(ROWS)} rows; ask for 1 to {len(ROWS)} (or None for all)")
    return [chat_row((question, answer), category=category) for category, question, answer in ROWS[:n]]
